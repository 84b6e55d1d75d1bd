"""The review report a gate opens with: sections, figures, plots, the HTML template."""
