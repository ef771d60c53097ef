"""The only package that touches SQLAlchemy: schema, migrations, stores of domain types."""

from hashguard.store.banks import BankStore, UnknownBank
from hashguard.store.database import Store, open_store
from hashguard.store.scans import ScanStore

__all__ = ["BankStore", "ScanStore", "Store", "UnknownBank", "open_store"]
