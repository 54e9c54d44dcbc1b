"""Apache Airflow provider for SMS campaigns."""

__version__ = "0.1.0"
