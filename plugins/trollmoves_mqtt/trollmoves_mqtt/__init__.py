"""Trollmoves plugin: the roles' bus on an MQTT v5 broker (``mqtt://`` and ``mqtts://``)."""
