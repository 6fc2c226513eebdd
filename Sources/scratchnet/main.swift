print("scratchnet: under construction")
