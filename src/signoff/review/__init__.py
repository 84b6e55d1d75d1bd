"""Human validation: the review report and deciding gates under their policy."""
