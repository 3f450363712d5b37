"""The edge processor's understanding network: training data, training, evaluation.

``data`` labels generated sentences with the rule NLU (the network learns to agree with it),
``train`` trains, prunes, quantizes and compiles it to ``models/nlu/edge.img`` (+ ``edge.json``),
``evaluate`` measures its agreement with the rule NLU on held-out sentences and names. The
runtime side (reading the network's outputs, the MQTT service) is ``firmware_sim.nlu`` and
``firmware_sim.service``; nothing here runs in the daemon.
"""
