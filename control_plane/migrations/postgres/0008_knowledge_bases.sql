-- Knowledge bases (issue 20): an organisation's documents, chunked and indexed for retrieval in the
-- turn. Lexical ranking is full-text search: a stored tsvector (english configuration) under a GIN
-- index. Embeddings, when configured, are real[] ranked by the application (plain SQL, no
-- extension, so this runs wherever the rest does). Documents are the organisation's own material,
-- not callers' personal data: they are stored in clear so that they can be indexed.

CREATE TABLE knowledge_bases (
    id           uuid PRIMARY KEY,
    org_id       uuid NOT NULL REFERENCES organisations (id) ON DELETE CASCADE,
    name         text NOT NULL,
    description  text NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL,
    UNIQUE (org_id, name)
);

CREATE TABLE knowledge_documents (
    id            uuid PRIMARY KEY,
    kb_id         uuid NOT NULL REFERENCES knowledge_bases (id) ON DELETE CASCADE,
    org_id        uuid NOT NULL REFERENCES organisations (id) ON DELETE CASCADE,
    name          text NOT NULL,
    content_type  text NOT NULL,
    sha256        text NOT NULL,
    chars         integer NOT NULL,
    chunks        integer NOT NULL,
    embedded      boolean NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL,
    UNIQUE (kb_id, name)
);

CREATE TABLE knowledge_chunks (
    id           bigserial PRIMARY KEY,
    document_id  uuid NOT NULL REFERENCES knowledge_documents (id) ON DELETE CASCADE,
    kb_id        uuid NOT NULL,
    ord          integer NOT NULL,
    source       text NOT NULL,                  -- the document's name, as the agent cites it
    body         text NOT NULL,
    tsv          tsvector NOT NULL GENERATED ALWAYS AS (to_tsvector('english', body)) STORED,
    embedding    real[]
);
CREATE INDEX knowledge_chunks_document ON knowledge_chunks (document_id);
CREATE INDEX knowledge_chunks_tsv ON knowledge_chunks USING gin (tsv);
-- No index on kb_id alone: the planner would filter a whole base through it, detoasting every
-- tsvector, instead of asking the GIN index for the few passages that hold a query's words.

-- How many passages of a base hold each word (lower-cased, stop words left out, as queries are
-- split): a query leaves out the words most passages hold, which rank nothing and cost the most.
CREATE TABLE knowledge_terms (
    kb_id  uuid NOT NULL REFERENCES knowledge_bases (id) ON DELETE CASCADE,
    term   text NOT NULL,
    df     integer NOT NULL,
    PRIMARY KEY (kb_id, term)
);
