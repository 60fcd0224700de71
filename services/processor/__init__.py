"""The stream processor (Faust): validate → resolve profile → decide → route to a send topic."""
