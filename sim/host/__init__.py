"""The host side of the accelerator: protocol client, driver, transports, training on RTL or a board."""
