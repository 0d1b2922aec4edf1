"""SIEM destinations: Splunk HEC, syslog over TLS (RFC 5424 or CEF), OpenSearch/Elasticsearch ``_bulk``.

Each takes a batch of formatted events and answers per event: accepted, or dead-letter with a reason
(:class:`~siem_pipeline.destinations.base.BatchResult`); transport failures and configuration errors
raise, so the export core commits nothing.
"""
