"""The types a scikit-learn model file may name, per kind of skops node: an explicit allow-list.

A skops archive is a tree of nodes in ``schema.json``; each node has a kind (its
``__loader__``: ``ObjectNode``, ``NdArrayNode``, ...) and names a type by its module and
class. What skops does with the name depends on the kind: an object node builds an
instance of the class, a function node imports the function, a loss node calls its class
with arguments from the file. So a name is trusted only for the kinds it appears with in a
genuine model, and every other kind (a ``ConstructorFromReduceNode`` that calls any
callable, method and ``operator`` nodes, sets, bytes, sparse matrices, ...) is refused.
Names are exact, never prefixes: ``numpy.testing._private.utils.runstring`` starts with
``numpy.`` and executes a string.

How it was derived: every estimator in ``SUPPORTED`` (``tests/unit/test_sklearn_estimators.py``:
linear models, trees and forests, gradient boosting including HistGradientBoosting,
k-neighbours, naive Bayes, SVMs, Pipeline/ColumnTransformer with the common preprocessors,
on float64, float32 and int64 features and int, bool and str labels) was fitted on tiny data
and saved with ``skops.io.dumps``. Each archive was read two ways: ``skops.io.get_untrusted_types``
(what skops itself does not trust by default, e.g. ``sklearn.tree._tree.Tree``) and
:func:`signoff.registry.flavors._sklearn.named_types` (every node kind and type the schema
names, including what skops trusts by default). The union is below, for scikit-learn 1.9 and
skops 0.16; that test file regenerates it for every supported estimator and fails when an
archive names something missing here, or when an entry here is no longer needed.

How to extend: add the estimator to ``SUPPORTED`` and run that file; the failure lists the
missing ``(kind, type)`` pairs. Review each before adding it: a type belongs here only if
importing it, building it from arguments a file chooses and calling it do nothing but
compute on data (no files, processes, network, imports or code evaluation). Never add a
prefix, a module, or a callable such as ``eval``, ``exec``, ``os.system``,
``subprocess.Popen`` or ``numpy.load``; a model that needs one belongs in the ``python``
flavor. A new skops protocol is added to :data:`SKOPS_PROTOCOLS` only after the same review
of the node classes that read it.

Trusted is not validated: tree, tree-predictor and neighbour-tree arrays hold raw indices
that scikit-learn follows without bounds checks, so a crafted file of trusted types can
still crash the process that predicts. The folder digest (what was approved) covers that.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

__all__ = ["BIT_GENERATOR", "SKOPS_PROTOCOLS", "TRUSTED_NODES", "TRUSTED_TYPES"]

BIT_GENERATOR = "bit_generator"
"""The pseudo node kind under which a random generator's bit generator name is checked."""

SKOPS_PROTOCOLS: frozenset[int] = frozenset({2})
"""The skops archive protocols accepted: a file picks the node classes that read it by this."""

TRUSTED_NODES: Mapping[str, frozenset[str]] = MappingProxyType(
    {
        # instances rebuilt from their attribute dict (``__new__`` then ``__setstate__``)
        "ObjectNode": frozenset(
            {
                "sklearn._loss.link.IdentityLink",
                "sklearn._loss.link.Interval",
                "sklearn._loss.link.LogLink",
                "sklearn._loss.link.LogitLink",
                "sklearn._loss.link.MultinomialLogit",
                "sklearn._loss.loss.HalfBinomialLoss",
                "sklearn._loss.loss.HalfMultinomialLoss",
                "sklearn._loss.loss.HalfPoissonLoss",
                "sklearn._loss.loss.HalfSquaredError",
                "sklearn.compose._column_transformer.ColumnTransformer",
                "sklearn.decomposition._pca.PCA",
                "sklearn.dummy.DummyClassifier",
                "sklearn.dummy.DummyRegressor",
                "sklearn.ensemble._forest.ExtraTreesClassifier",
                "sklearn.ensemble._forest.ExtraTreesRegressor",
                "sklearn.ensemble._forest.RandomForestClassifier",
                "sklearn.ensemble._forest.RandomForestRegressor",
                "sklearn.ensemble._gb.GradientBoostingClassifier",
                "sklearn.ensemble._gb.GradientBoostingRegressor",
                "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
                "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingClassifier",
                "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingRegressor",
                "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
                "sklearn.impute._base.MissingIndicator",
                "sklearn.impute._base.SimpleImputer",
                "sklearn.linear_model._base.LinearRegression",
                "sklearn.linear_model._coordinate_descent.ElasticNet",
                "sklearn.linear_model._coordinate_descent.Lasso",
                "sklearn.linear_model._glm.glm.PoissonRegressor",
                "sklearn.linear_model._logistic.LogisticRegression",
                "sklearn.linear_model._ridge.Ridge",
                "sklearn.linear_model._ridge.RidgeClassifier",
                "sklearn.linear_model._stochastic_gradient.SGDClassifier",
                "sklearn.linear_model._stochastic_gradient.SGDRegressor",
                "sklearn.metrics._dist_metrics.EuclideanDistance64",
                "sklearn.metrics._dist_metrics.ManhattanDistance64",
                "sklearn.naive_bayes.BernoulliNB",
                "sklearn.naive_bayes.ComplementNB",
                "sklearn.naive_bayes.GaussianNB",
                "sklearn.naive_bayes.MultinomialNB",
                "sklearn.neighbors._ball_tree.BallTree",
                "sklearn.neighbors._classification.KNeighborsClassifier",
                "sklearn.neighbors._kd_tree.KDTree",
                "sklearn.neighbors._regression.KNeighborsRegressor",
                "sklearn.pipeline.Pipeline",
                "sklearn.preprocessing._data.MaxAbsScaler",
                "sklearn.preprocessing._data.MinMaxScaler",
                "sklearn.preprocessing._data.Normalizer",
                "sklearn.preprocessing._data.RobustScaler",
                "sklearn.preprocessing._data.StandardScaler",
                "sklearn.preprocessing._discretization.KBinsDiscretizer",
                "sklearn.preprocessing._encoders.OneHotEncoder",
                "sklearn.preprocessing._encoders.OrdinalEncoder",
                "sklearn.preprocessing._function_transformer.FunctionTransformer",
                "sklearn.preprocessing._label.LabelBinarizer",
                "sklearn.preprocessing._label.LabelEncoder",
                "sklearn.preprocessing._polynomial.PolynomialFeatures",
                "sklearn.svm._classes.LinearSVC",
                "sklearn.svm._classes.LinearSVR",
                "sklearn.svm._classes.SVC",
                "sklearn.svm._classes.SVR",
                "sklearn.tree._classes.DecisionTreeClassifier",
                "sklearn.tree._classes.DecisionTreeRegressor",
                "sklearn.tree._classes.ExtraTreeClassifier",
                "sklearn.tree._classes.ExtraTreeRegressor",
            }
        ),
        # the node storage of every decision tree (constructor fixed by skops)
        "TreeNode": frozenset({"sklearn.tree._tree.Tree"}),
        # the Cython losses of SGD, gradient boosting and HistGradientBoosting
        "LossNode": frozenset(
            {
                "sklearn._loss._loss.CyHalfBinomialLoss",
                "sklearn._loss._loss.CyHalfMultinomialLoss",
                "sklearn._loss._loss.CyHalfPoissonLoss",
                "sklearn._loss._loss.CyHalfSquaredError",
                "sklearn.linear_model._sgd_fast.Hinge",
            }
        ),
        # arrays (``.npy`` members read with ``allow_pickle=False``) and numpy scalars
        "NdArrayNode": frozenset(
            {
                "numpy.float32",
                "numpy.float64",
                "numpy.int64",
                "numpy.ndarray",
                "numpy.uint64",
            }
        ),
        # dtypes, stored as an empty ``.npy`` array
        "DTypeNode": frozenset({"numpy.dtype"}),
        # legacy random states (gradient boosting)
        "RandomStateNode": frozenset({"numpy.random.mtrand.RandomState"}),
        # random generators (HistGradientBoosting)
        "RandomGeneratorNode": frozenset({"numpy.random._generator.Generator"}),
        # the bit generator a random generator node names by a plain string
        BIT_GENERATOR: frozenset({"numpy.random.PCG64"}),
        # functions: only the one HistGradientBoosting's categorical encoder keeps
        "FunctionNode": frozenset({"sklearn.utils.validation.check_array"}),
        # ``functools.partial`` of the function above
        "PartialNode": frozenset({"functools.partial"}),
        # types kept as values (dict key types, ``dtype`` parameters)
        "TypeNode": frozenset(
            {
                "builtins.str",
                "numpy.float64",
            }
        ),
        "DictNode": frozenset({"builtins.dict"}),
        "ListNode": frozenset({"builtins.list"}),
        "TupleNode": frozenset({"builtins.tuple"}),
        "SliceNode": frozenset({"builtins.slice"}),
        # strings, numbers, booleans and None, read with ``json.loads``
        "JsonNode": frozenset({"builtins.str"}),
    }
)
"""Node kind -> the fully qualified type names a node of that kind may name."""

TRUSTED_TYPES: frozenset[str] = frozenset().union(*TRUSTED_NODES.values())
"""Every allow-listed name, whatever its kind: what ``get_untrusted_types`` may report."""
