"""The `storywatch` command, and `python -m worker`.

Kept light: every parsing process imports the program's main module again (multiprocessing's
forkserver does so), and the CLI would bring the writer's world with it (sqlite-utils, httpx,
click: some 250 modules, 18 MiB a parsing process). The CLI is imported when the command runs.
"""


def main() -> None:
    from worker.cli import main as run_command

    run_command()


if __name__ == "__main__":  # a parsing process imports this module as __mp_main__: it runs nothing
    main()
