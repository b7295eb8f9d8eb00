"""Chaos Toolkit actions for the Kubernetes target that chaostoolkit-kubernetes does not offer.

chaosk8s kills pods, scales, cordons, drains and drives Chaos Mesh; it has no action to
change a Deployment's environment and put it back, to run a canary beside a Deployment, to
remember a replica count for the rollback, to rotate or hide the shared-key Secret, to
delete a Chaos Mesh object idempotently, to take the nodes of one service's pods away, to
drain nodes one at a time and uncordon each, to
change a feature flag in the config ConfigMap, or to run the orders store's schema migration
as a Job. These do, each revert idempotent (a rollback may run
after the method already reverted, or after a run that never got that far): the state needed
to revert is kept on the object itself (a ``shakeout.io/*`` annotation) or in a side object,
never in this process, so ``shakeout cleanup`` from another process can still undo it.

One module per resource, as chaosk8s splits its own (``chaosk8s.deployment.actions``, ...);
an experiment names the module of the action it calls:

- :mod:`shakeout.k8s.actions.deployment`: environment, canary and replica count of a Deployment;
- :mod:`shakeout.k8s.actions.secret`: rotation and outage of the shared-key Secret;
- :mod:`shakeout.k8s.actions.crd`: idempotent deletion of a custom object (a Chaos Mesh fault);
- :mod:`shakeout.k8s.actions.node`: capacity loss, the nodes of a service's pods taken away;
  a rolling node upgrade, every node drained in turn within the disruption budgets;
- :mod:`shakeout.k8s.actions.configmap`: a feature flag in the shakeout-config ConfigMap;
- :mod:`shakeout.k8s.actions.job`: the orders store's schema migration as a Job.
"""
