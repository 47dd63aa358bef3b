"""Core: the stock-and-flow compiler, solvers, networks and stochastic transitions."""

from ._compile import CompiledModel as CompiledModel
from ._compile import compile_model as compile_model
from ._network import DenseNetwork as DenseNetwork
from ._network import SparseNetwork as SparseNetwork
from ._network import dense_network as dense_network
from ._network import sparse_network as sparse_network
from ._simulate import Simulation as Simulation
from ._simulate import simulate as simulate
from ._solvers import RK4 as RK4
from ._solvers import Adaptive as Adaptive
from ._solvers import Euler as Euler
from ._solvers import make_solver as make_solver
from ._spec import Auxiliary as Auxiliary
from ._spec import Delay as Delay
from ._spec import Flow as Flow
from ._spec import Lookup as Lookup
from ._spec import Model as Model
from ._spec import Parameter as Parameter
from ._spec import Schedule as Schedule
from ._spec import Smooth as Smooth
from ._spec import Stock as Stock
from ._dataset import to_dataset as to_dataset

__all__ = [
    "CompiledModel",
    "compile_model",
    "DenseNetwork",
    "SparseNetwork",
    "dense_network",
    "sparse_network",
    "Simulation",
    "simulate",
    "RK4",
    "Adaptive",
    "Euler",
    "make_solver",
    "Auxiliary",
    "Delay",
    "Flow",
    "Lookup",
    "Model",
    "Parameter",
    "Schedule",
    "Smooth",
    "Stock",
    "to_dataset",
]
