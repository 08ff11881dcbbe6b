"""pretix-cluster's database backend for pretix (ENGINE ``pretix_cluster_db.postgresql``)."""
