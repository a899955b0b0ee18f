from speechllm.data.batching import BucketBatchSampler, max_new_tokens


def take(sampler, n):
    it = iter(sampler)
    return [next(it) for _ in range(n)]


def test_order_is_seeded_and_covers_every_utterance_each_epoch():
    durations = [float(i % 7) for i in range(23)]
    a = BucketBatchSampler(durations, 4, seed=3)
    per_epoch = len(a)
    first = take(a, per_epoch)
    assert sorted(i for b in first for i in b) == list(range(23))
    assert take(BucketBatchSampler(durations, 4, seed=3), per_epoch) == first
    assert take(BucketBatchSampler(durations, 4, seed=4), per_epoch) != first
    second = take(a, per_epoch)  # next epoch: new order
    assert second != first and sorted(i for b in second for i in b) == list(range(23))


def test_bucketing_groups_similar_durations():
    durations = [float(i) for i in range(64)]
    batches = BucketBatchSampler(durations, 8, seed=0, pool=100).local_batches(0)
    assert all(max(durations[i] for i in b) - min(durations[i] for i in b) == 7 for b in batches)


def test_two_processes_see_what_one_process_sees():
    durations = [1.0 + (i % 5) for i in range(30)]
    one = take(BucketBatchSampler(durations, 6, seed=1), 12)
    ranks = [take(BucketBatchSampler(durations, 3, seed=1, rank=r, world=2), 12) for r in range(2)]
    assert [sorted(a + b) for a, b in zip(*ranks)] == [sorted(b) for b in one]


def test_skip_resumes_at_the_same_batch_across_epochs():
    durations = [float(i) for i in range(10)]
    reference = take(BucketBatchSampler(durations, 3, seed=5), 9)
    resumed = BucketBatchSampler(durations, 3, seed=5)
    resumed.skip(5)
    assert take(resumed, 4) == reference[5:]


def test_decoding_budget_grows_with_duration():
    assert max_new_tokens(1.0, 10.0, 16) == 26 and max_new_tokens(10.0, 10.0, 16) == 116
