"""The REST API: request and response schemas (:mod:`.schemas`), handlers (:mod:`.handlers`,
:mod:`.numbers`, and the campaigns' in :mod:`control_plane.campaigns.api`), and the one table of
endpoints (:mod:`.routes`) from which the routes and the OpenAPI document (:mod:`.openapi`) are made.

Importing a module of this package loads only that module: the schemas can be used by the
services and the campaign models without loading every handler."""
