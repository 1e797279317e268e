import PGFlow
import PGNodes
print("pgflow")
