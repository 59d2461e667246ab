"""An example callagent tool package: ``order_status`` looks an order up in a small HTTP
service (:mod:`.service`, a stand-in for a shop's order system)."""
