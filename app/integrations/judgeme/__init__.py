"""Judge.me: points for published product reviews, taken back when a review goes away."""
