"""The notebook layer: validated parameters per profile (config, params), the object a notebook works through
(experiment), what it shows (display, feedback_panel), figure helpers, and the registry of papers."""
