"""Fault suite: real gunicorn + real MariaDB on 127.0.0.1, with workers SIGKILLed and services cut.

harness.py holds the reusable parts; test_faults.py the pytest scenarios (about 2-3 minutes, marked `fault`);
bench/fault_storm.py runs the same storm at a bigger size.
"""
