"""The fault harness: real gunicorn, the provider sandbox, a TCP proxy that can cut MariaDB, a private
redis-server, a storm driver with a worker killer, and the accounting of what became of every callback.

What it proves (with payments/tests/faults and bench/fault_storm.py): every acknowledged provider callback ends
credited exactly once (or held for review), nothing lost, verify_ledger clean, under real faults. A package of
its own, not under tests/, because the bench drives it too; split by job: processes.py (the processes),
killer.py (faults in time), storm.py (deliveries and their driver), seeding.py (the storm's rows and bodies),
accounting.py (what became of them), rig.py (a whole rig). Importing it is free and touches no database.
"""
