"""The application ``spark-submit`` runs for the tasks of ``sparkhu airflow dags --operator spark-submit``.

``spark-submit`` runs a Python application as a script, with the script's folder first on
``sys.path``; this folder holds nothing else, so no module of sparkhu's CLI shadows the standard
library's (``cli/platform.py`` would shadow ``platform``).
"""
