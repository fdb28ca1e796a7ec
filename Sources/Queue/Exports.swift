// JSONValue, the form payloads and results travel in, lives in DBQSupport (PostgreSQL's
// parse trees are read as the same type); whoever imports Queue sees it as before.
@_exported import DBQSupport
