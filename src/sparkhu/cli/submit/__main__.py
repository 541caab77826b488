"""``spark-submit …/sparkhu/cli/submit/__main__.py ARGS``: sparkhu's CLI in the Spark driver."""

from sparkhu.cli.main import run

if __name__ == "__main__":
    run()
