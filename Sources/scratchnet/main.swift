print("scratchnet")
