"""Knowledge bases (issue 20): an organisation's documents, indexed in the store next to its calls.

``extract`` turns a document (text, Markdown, HTML, PDF) into text; ``chunking`` cuts it into
passages; ``store`` keeps and ranks them (SQLite FTS5 BM25, PostgreSQL full-text search);
``embeddings`` and ``fusion`` add the optional vector ranking; ``service`` is what the API, the
CLI and the call pipeline use, and its ``Retriever`` is the engine's ``KnowledgeRetriever``.
"""
