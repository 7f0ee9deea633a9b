pytest_plugins = ["tests.infra.plugin"]
