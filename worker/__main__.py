"""`python -m worker` runs the storywatch command."""

from worker.cli import main

main()
