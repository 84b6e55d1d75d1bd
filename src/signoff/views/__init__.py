"""The read models of signoff: what ``--json`` prints and what the REST API answers.

``models`` defines them (frozen pydantic models); ``build`` makes them from records.
"""
