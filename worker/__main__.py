"""`python -m worker` runs the storywatch command."""

from worker.cli import main

if __name__ == "__main__":  # parsing processes import this module again; they must not run the CLI
    main()
