"""Campaign engines: what a send, a sync, a newsletter and a reconcile do, free of Airflow."""
