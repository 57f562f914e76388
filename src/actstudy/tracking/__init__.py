"""Everything about the MLflow record: the store and run helpers (`store`), the one client whose every
call waits as its policy says (`client`), the new-store template (`store_template`), the batched
metrics writer (`logger`), system metrics (`system_metrics`).
"""
