"""The sandbox: fake Google People API and Microsoft Graph contacts, with both OAuth servers,
over real HTTP on loopback, for the demo, the tests and local development.

Production code never imports it (only the CLI's ``demo``, ``sandbox`` and ``serve --sandbox``,
inside those commands); it needs the ``sandbox`` extra (``faker``). Its modules, each importing
only those above it in this list:

    book, dirty       generated address books (Faker), and the dirty contacts a knob adds
    changes           an account's edits, as versions over its read-only book
    accounts          Account and its Faults knobs
    oauth_wire        the two OAuth servers' error bodies, token shapes and scopes
    oauth_store       registered clients, authorization codes, refresh tokens
    state             SandboxState (accounts, books), Book, admit: what every route shares
    listing           what Google's and Graph's listings do alike: sealed tokens, faults
    people            Google's people.connections.list
    graph             Graph's /me/contacts and the Person -> contact conversion
    graph_delta       Graph's contact delta
    oauth, control    the OAuth endpoints; the sandbox's own /_sandbox routes
    app               the Starlette app: the routes above, put together
    server            serving it on loopback (a thread, or the foreground)
"""
