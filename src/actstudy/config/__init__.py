"""What a job is, checked before anything runs: the typed schema (`schema`), its checks against each
`_target_`'s signature (`typed`), the command line's overrides (`overrides`), and a job's and a sweep's
identity (`identity`: fingerprints and folder names).
"""
