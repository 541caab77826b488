"""``python -m sparkhu.cli``: the ``sparkhu`` command, from any Python that has sparkhu."""

from sparkhu.cli.main import run

if __name__ == "__main__":
    run()
