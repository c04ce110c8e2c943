from schedctl.cli import app

app()
