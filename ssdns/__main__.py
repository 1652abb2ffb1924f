from ssdns.cli import run

run()
