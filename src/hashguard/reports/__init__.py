"""Report sinks: the legally required reports (NCMEC CyberTipline first), built from
confirmed cases and sent through a persisted, resumable state machine."""
