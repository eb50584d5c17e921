"""Snakepit configuration: parser, version schemas, detection, converters, validation, rewriting.

Pure logic except :mod:`deployment.config.files`, which reads and writes files.
"""
