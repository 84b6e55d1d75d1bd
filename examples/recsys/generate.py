"""Ingest: generate this week's synthetic implicit-feedback data for the recommender.

Users (age bucket, activity, declared favourite category, past views per category) see a feed
of items (category, popularity, price tier, freshness) and click with a probability from a
hidden logistic model: user-category affinity, popularity, activity, a price penalty for young
users, freshness, a hidden item quality, feed position and noise. A model can learn most of
it from the observed features, not all. Writes ``interactions.npz``, ``users.npz`` and
``items.npz``; the same seed gives byte-identical files.
"""

from __future__ import annotations

import argparse

import numpy as np
from recsys_lib import N_CATEGORIES, Arrays, positive_int, save_npz

import signoff


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=positive_int, default=2000, help="number of users")
    parser.add_argument("--items", type=positive_int, default=400, help="number of items")
    parser.add_argument("--impressions", type=positive_int, default=30, help="items per feed")
    parser.add_argument("--seed", type=int, default=7, help="random seed")
    return parser.parse_args()


def generate(n_users: int, n_items: int, impressions: int, seed: int) -> tuple[Arrays, ...]:
    """Return the (users, items, interactions) tables as dicts of arrays."""
    rng = np.random.default_rng(seed)
    users_idx = np.arange(n_users)

    # Users: observed profile plus a hidden taste per category.
    age = rng.integers(0, 6, n_users)
    activity = rng.beta(2.0, 4.0, n_users)
    preferred = rng.integers(0, N_CATEGORIES, n_users)
    taste = rng.normal(0.0, 0.7, (n_users, N_CATEGORIES))
    taste[users_idx, preferred] += 1.5
    # Past views per category: a noisy, activity-dependent sample of the hidden taste.
    n_past = 3 + rng.poisson(5.0 + 40.0 * activity)
    taste_p = np.exp(taste) / np.exp(taste).sum(axis=1, keepdims=True)
    history = rng.multinomial(n_past, taste_p)

    # Items: observed attributes plus a hidden quality.
    category = rng.integers(0, N_CATEGORIES, n_items)
    views = rng.lognormal(3.0, 1.2, n_items)
    popularity = np.log1p(views) / np.log1p(views).max()
    price_tier = rng.integers(0, 4, n_items)
    freshness = rng.uniform(0.0, 1.0, n_items)
    quality = rng.normal(0.0, 0.35, n_items)

    # Feeds: each user sees `k` distinct items, drawn in proportion to sqrt(views)
    # (Gumbel top-k), ordered by the draw: position 0 is the top of the feed.
    k = min(impressions, n_items)
    keys = 0.5 * np.log(views)[None, :] + rng.gumbel(size=(n_users, n_items))
    shown = np.argsort(-keys, axis=1, kind="stable")[:, :k]
    user_id = np.repeat(users_idx, k)
    item_id = shown.ravel()
    position = np.tile(np.arange(k), n_users)

    young = age[user_id] <= 1
    logit = (
        -4.2
        + 1.4 * taste[user_id, category[item_id]]
        + 1.8 * popularity[item_id]
        + 0.9 * activity[user_id]
        - 0.45 * price_tier[item_id] * young
        + 0.6 * freshness[item_id]
        + quality[item_id]
        - 0.02 * position
        + rng.normal(0.0, 0.4, user_id.size)
    )
    clicked = rng.random(user_id.size) < 1.0 / (1.0 + np.exp(-logit))

    users = {
        "user_id": users_idx.astype(np.int64),
        "age_bucket": age.astype(np.int64),
        "activity": activity.astype(np.float64),
        "preferred_category": preferred.astype(np.int64),
        "history": history.astype(np.int64),
    }
    items = {
        "item_id": np.arange(n_items, dtype=np.int64),
        "category": category.astype(np.int64),
        "popularity": popularity.astype(np.float64),
        "price_tier": price_tier.astype(np.int64),
        "freshness": freshness.astype(np.float64),
    }
    interactions = {
        "user_id": user_id.astype(np.int64),
        "item_id": item_id.astype(np.int64),
        "position": position.astype(np.int64),
        "clicked": clicked.astype(np.int8),
    }
    return users, items, interactions


def main() -> None:
    """Generate the data, write it to the output folder and log what was made."""
    args = _parse_args()
    users, items, interactions = generate(args.users, args.items, args.impressions, args.seed)

    out = signoff.output_dir()
    save_npz(out / "users.npz", users)
    save_npz(out / "items.npz", items)
    save_npz(out / "interactions.npz", interactions)

    signoff.log_param("n_users", args.users)
    signoff.log_param("n_items", args.items)
    signoff.log_param("impressions_per_user", min(args.impressions, args.items))
    signoff.log_param("n_categories", N_CATEGORIES)
    signoff.log_param("seed", args.seed)
    clicks = interactions["clicked"]
    rows = int(clicks.size)
    click_rate = float(clicks.mean())
    users_with_click = len(np.unique(interactions["user_id"][clicks == 1])) / args.users
    signoff.log_metric("rows", rows)
    signoff.log_metric("click_rate", click_rate)
    signoff.log_metric("users_with_click", users_with_click)
    print(
        f"generate.py: {args.users} users, {args.items} items, {rows} impressions, "
        f"click rate {click_rate:.3f}, seed {args.seed} -> {out}"
    )


if __name__ == "__main__":
    main()
