-- Knowledge bases (issue 20): an organisation's documents, chunked and indexed for retrieval in the
-- turn. Lexical ranking is FTS5's BM25 over an external-content index kept in step by triggers
-- (deleting a document, by cascade, removes its chunks and their index entries). Embeddings, when
-- configured, are little-endian float32 blobs ranked in Python. Documents are the organisation's
-- own material, not callers' personal data: they are stored in clear so that they can be indexed.

CREATE TABLE knowledge_bases (
    id           TEXT PRIMARY KEY,
    org_id       TEXT NOT NULL REFERENCES organisations (id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    description  TEXT NOT NULL DEFAULT '',
    created_at   TEXT NOT NULL,
    UNIQUE (org_id, name)
);

CREATE TABLE knowledge_documents (
    id            TEXT PRIMARY KEY,
    kb_id         TEXT NOT NULL REFERENCES knowledge_bases (id) ON DELETE CASCADE,
    org_id        TEXT NOT NULL REFERENCES organisations (id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    content_type  TEXT NOT NULL,
    sha256        TEXT NOT NULL,
    chars         INTEGER NOT NULL,
    chunks        INTEGER NOT NULL,
    embedded      INTEGER NOT NULL DEFAULT 0,
    created_at    TEXT NOT NULL,
    UNIQUE (kb_id, name)
);

CREATE TABLE knowledge_chunks (
    id           INTEGER PRIMARY KEY,            -- the FTS rowid
    document_id  TEXT NOT NULL REFERENCES knowledge_documents (id) ON DELETE CASCADE,
    kb_id        TEXT NOT NULL,
    ord          INTEGER NOT NULL,
    source       TEXT NOT NULL,                  -- the document's name, as the agent cites it
    body         TEXT NOT NULL,
    embedding    BLOB
);
CREATE INDEX knowledge_chunks_document ON knowledge_chunks (document_id);
CREATE INDEX knowledge_chunks_kb ON knowledge_chunks (kb_id);

CREATE VIRTUAL TABLE knowledge_fts USING fts5 (
    body, content = 'knowledge_chunks', content_rowid = 'id', tokenize = 'porter unicode61'
);
CREATE TRIGGER knowledge_chunks_ai AFTER INSERT ON knowledge_chunks BEGIN
    INSERT INTO knowledge_fts (rowid, body) VALUES (new.id, new.body);
END;
CREATE TRIGGER knowledge_chunks_ad AFTER DELETE ON knowledge_chunks BEGIN
    INSERT INTO knowledge_fts (knowledge_fts, rowid, body) VALUES ('delete', old.id, old.body);
END;

-- How many passages of a base hold each word (lower-cased, stop words left out, as queries are
-- split): a query leaves out the words most passages hold, which rank nothing and cost the most.
CREATE TABLE knowledge_terms (
    kb_id  TEXT NOT NULL REFERENCES knowledge_bases (id) ON DELETE CASCADE,
    term   TEXT NOT NULL,
    df     INTEGER NOT NULL,
    PRIMARY KEY (kb_id, term)
) WITHOUT ROWID;
