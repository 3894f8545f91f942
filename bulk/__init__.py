"""Bulk classification of tweet archives on Apache Spark with an edge bundle and app's classifier."""
