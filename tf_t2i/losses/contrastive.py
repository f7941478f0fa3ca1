"""NT-Xent contrastive loss, replica-aware.

Chen et al. 2020, "A Simple Framework for Contrastive Learning of Visual
Representations" (SimCLR), as used for text-to-image synthesis by Ye et al.
2021, "Improving Text-to-Image Synthesis Using Contrastive Learning" (T2I_CL,
huiyegit/T2I_CL `nt_xent.py`): cosine similarity over temperature, the anchor
itself excluded, no projection head.

Under a `tf.distribute` strategy with several replicas the negatives come from
the whole global batch (all-gather), so the value and the gradients do not
depend on how the batch is split across replicas.
"""

import tensorflow as tf

_SELF_LOGIT = -1e9


def _l2_normalize_rows(x):
    # Matches a cosine similarity whose norm product is clamped at 1e-8.
    return tf.math.l2_normalize(x, axis=1, epsilon=1e-16)


def _gather_global(a, b):
    """Gathers a and b across replicas.

    Returns:
        (a_all, b_all, offset): the global [N_global, D] tensors and the position
        of this replica's first row in them (0 outside a multi-replica context).
    """
    ctx = tf.distribute.get_replica_context()
    if ctx is None or ctx.num_replicas_in_sync <= 1:
        return a, b, 0
    n_local = tf.shape(a)[0]
    a_all = ctx.all_gather(a, axis=0)
    b_all = ctx.all_gather(b, axis=0)
    replica_id = tf.cast(ctx.replica_id_in_sync_group, tf.int32)
    return a_all, b_all, replica_id * n_local


def nt_xent_per_example(a, b, temperature=0.5):
    """Per-example NT-Xent loss (Chen et al. 2020, Eq. 1; Ye et al. 2021, Eq. 2).

    Rows a[i] and b[i] are a positive pair. With z = concat(a, b) of the
    L2-normalised rows (2N vectors), anchor k has logits cos(z_k, z_m) /
    temperature for every m != k and target its partner; loss_k is that
    cross-entropy. The value for pair i is (loss_i + loss_{N+i}) / 2, so the
    batch mean is the paper's (1 / 2N) sum over all 2N anchors.

    Inside a replica context with more than one replica, a and b are gathered
    from all replicas and each local anchor is contrasted against the 2N_global
    vectors of the global batch; only the local rows' values are returned, so
    `tf.nn.compute_average_loss(per_example, global_batch_size=N_global)` summed
    over replicas equals the single-replica value. All replicas must hold the
    same number of rows.

    Args:
        a: [N, D] float, the first view of each pair.
        b: [N, D] float, the second view.
        temperature: positive float.

    Returns:
        float32 [N] per-pair losses of the local rows.
    """
    a = _l2_normalize_rows(tf.cast(a, tf.float32))
    b = _l2_normalize_rows(tf.cast(b, tf.float32))
    n_local = tf.shape(a)[0]
    a_all, b_all, offset = _gather_global(a, b)
    n_global = tf.shape(a_all)[0]
    candidates = tf.concat([a_all, b_all], axis=0)  # [2N_global, D]

    anchors = tf.concat([a, b], axis=0)  # [2N_local, D]
    logits = tf.matmul(anchors, candidates, transpose_b=True) / temperature

    local_rows = offset + tf.range(n_local)
    self_index = tf.concat([local_rows, n_global + local_rows], axis=0)
    partner_index = tf.concat([n_global + local_rows, local_rows], axis=0)
    is_self = tf.one_hot(self_index, 2 * n_global, on_value=True,
                         off_value=False, dtype=tf.bool)
    # A finite stand-in for -inf: exp() of it is exactly zero in float32, and
    # no inf can leak into the gradient.
    logits = tf.where(is_self, _SELF_LOGIT, logits)
    losses = tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=partner_index, logits=logits)  # [2N_local]
    return 0.5 * (losses[:n_local] + losses[n_local:])


def nt_xent_loss(a, b, temperature=0.5):
    """Mean NT-Xent loss over the batch (Chen et al. 2020; Ye et al. 2021).

    Args:
        a: [N, D] float, the first view of each pair.
        b: [N, D] float, the second view.
        temperature: positive float.

    Returns:
        float32 scalar, the mean of `nt_xent_per_example` (the paper's loss on a
        single replica).
    """
    return tf.reduce_mean(nt_xent_per_example(a, b, temperature))
