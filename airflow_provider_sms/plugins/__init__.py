"""The provider's Airflow plugin: the SMS campaigns pages in the Airflow UI (see campaigns.py)."""
