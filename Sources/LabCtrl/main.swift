print("labctrl")
