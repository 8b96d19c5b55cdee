"""The arguments of a small NCP wiring given by every one of its sizes (rather than derived by
AutoNCP), shared by the tests that build an explicit NCP: 5 inter, 4 command and 2 motor neurons."""

SMALL_NCP = dict(
    inter_neurons=5,
    command_neurons=4,
    motor_neurons=2,
    sensory_fanout=2,
    inter_fanout=2,
    recurrent_command_synapses=3,
    motor_fanin=2,
)
