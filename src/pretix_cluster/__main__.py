from pretix_cluster.cli import main

main()
