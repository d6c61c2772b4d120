"""Priors: what a dictionary, a pinyin table and an emoji table already know, so that the
network never has to learn it. Torch-free; ``build_priors`` needs the build-time libraries
(wordfreq, jieba, pypinyin, emoji), ``Priors`` only numpy and marisa-trie.

    from keypilot.priors import Priors, build_priors
    build_priors(train_records, "runs/demo/priors")
    priors = Priors.load("runs/demo/priors")
    priors.propose("Hello Teresa, I wan").completions["EN"][0].text  # 'want'
"""

from keypilot.priors.build import build_priors
from keypilot.priors.keystroke import FEATURE_NAMES, NUM_FEATURES, PRIORS_DIR, KeystrokePriors, PriorCandidate
from keypilot.priors.priors import Priors

__all__ = ["FEATURE_NAMES", "NUM_FEATURES", "PRIORS_DIR", "KeystrokePriors", "PriorCandidate", "Priors", "build_priors"]
