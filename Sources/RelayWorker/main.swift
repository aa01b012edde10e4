print("relay-worker")
