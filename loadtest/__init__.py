"""Locust load tests: user classes, load shapes, reports and service-level checks."""
