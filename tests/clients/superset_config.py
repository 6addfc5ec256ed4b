"""Superset configuration for the client compatibility suite: just enough for Superset's app
to start so its PostgreSQL engine spec can be used (no web server, no metadata migrations)."""
import os

SECRET_KEY = "northstar-compat-suite-not-a-secret"
SQLALCHEMY_DATABASE_URI = "sqlite:///" + os.environ.get("NORTHSTAR_SUPERSET_DB", "/tmp/northstar-superset.db")
# Caches Superset keeps in its metadata database would need migrations; none are used here.
CACHE_CONFIG = {"CACHE_TYPE": "NullCache"}
DATA_CACHE_CONFIG = {"CACHE_TYPE": "NullCache"}
FILTER_STATE_CACHE_CONFIG = {"CACHE_TYPE": "NullCache"}
EXPLORE_FORM_DATA_CACHE_CONFIG = {"CACHE_TYPE": "NullCache"}
