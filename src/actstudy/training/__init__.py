"""Lightning and nothing else (no MLflow, no report): the Trainer and one job's fit and test
(`trainer`), the LightningModule (`module`), the record-keeping callbacks (`callbacks`).
"""
