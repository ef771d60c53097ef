"""Services: every change a person or a token makes, with its audit entry, one module per domain.

``cli/`` and ``web/`` parse a request, call a function here and render what it returns;
none of them records an audit event for a change itself. Each function takes the store
and the acting ``actor`` (``cli:<login>``, ``token:<id>``) and raises the store's or the
domain's errors for the front-end to render. Where the store offers one transaction for
several writes (``Store.transaction``), the change and its entry commit together;
the bank, token, exchange and people stores commit each write on its own, so there
the entry is appended right after the change it records.
"""
