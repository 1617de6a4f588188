"""Operations: the health check and the Prometheus figures."""
