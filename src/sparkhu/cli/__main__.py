"""``python -m sparkhu.cli``: the ``sparkhu`` command (also the application ``spark-submit`` runs for
the DAGs ``sparkhu airflow dags --operator spark-submit`` generates)."""

from sparkhu.cli.main import run

if __name__ == "__main__":
    run()
